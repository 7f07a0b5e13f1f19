"""safemt.models"""
